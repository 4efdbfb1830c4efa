"""The reference device agent (docs/agent.md): check in, verify verdicts, enforce offline."""

from regionlock.agent.core import Agent, Enforcement, UnlockRefused, VerdictRejected
from regionlock.agent.state import AgentState, FileStore, MemoryStore, StateStore

__all__ = [
    "Agent",
    "AgentState",
    "Enforcement",
    "FileStore",
    "MemoryStore",
    "StateStore",
    "UnlockRefused",
    "VerdictRejected",
]
