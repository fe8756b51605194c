"""The steps several commands share, each handed the command's one plan, the executors and a reporter:
building (with its fallbacks), the preflight checks, waiting for the server and running beside it.
Command modules (orchestrator.app.commands) call these; these never call a command."""
