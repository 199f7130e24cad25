"""The coach: a second, text-only model watching each sales call and whispering to the agent.

- `settings.CoachSettings`: the `[coach]` section.
- `core.CoachCore`: the sans-I/O part (transcript, schedule, prompt, strict reply
  parsing, objectives done on the call).
- `task.CoachTask`: one asyncio task per call around it, with a hard timeout and
  a process-wide breaker, so a slow or down coach is skipped, never waited for.

The guidance reaches the live agent through `agents.brain.Brain.coach_note`.
"""
