"""The outbound dialer: BullMQ call jobs in Redis become Twilio calls on our media path.

- `settings`: the `[dialer]` section.
- `jobs`: a job's data checked and typed before anything is dialed (sans-I/O).
- `outcome`: what a call came to, from its statuses and its caller's words (sans-I/O).
- `leg`: the Twilio side: `calls.create` with `<Connect><Stream>`, AMD, callbacks.
- `worker`: the queue consumer around the official `bullmq` package.
- `http`: the signed `/twilio/call-status` and `/twilio/amd` callbacks.
- `observer`: the live outbound call: voicemail drop, do-not-call, its outcome.
"""
