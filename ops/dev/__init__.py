"""Developer tools, apart from the product path: nothing under `telephony/`, `agents/`,
`media/` or `store/` imports from here, and the server never loads it.

- `sim` / `sim_cli`: `leadline sim call`, a Twilio stand-in placing one call.
- `bench`: `leadline bench calls`, N concurrent simulated calls and their figures.
- `twilio_side`: Twilio's side of the Media Streams wire, shared by both.
- `fake_realtime`: a fake OpenAI Realtime service speaking the real wire protocol.
- `cli`: their argparse definitions, stdlib-only so `leadline --help` stays quick.
"""
