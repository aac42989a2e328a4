"""The four scenarios every framework is recorded in, the canaries planted in them, and the one tool.

Each framework module builds its agent around ``lookup_order`` (a tool taking ``order_id``) and a model
that plays ``SCRIPTS[scenario]`` one action per model call:

* ``clean``: the model calls the tool, the tool answers, the model answers;
* ``retry``: the tool fails on its first call; the model calls it again in its next turn, it works,
  the model answers;
* ``rate_limited``: the tool works, then the model call is refused with HTTP 429 (or the framework's
  rate-limit exception), which ends the run;
* ``tool_fails``: the tool fails; the model answers anyway.

Canaries are unique strings placed in every kind of content (prompt, system prompt, model output, tool
arguments, tool result, exception messages); none of them may ever be stored or logged.
"""

from __future__ import annotations

SCENARIOS = ("clean", "retry", "rate_limited", "tool_fails")

CANARIES = {
    "prompt": "zqcnry-prompt-4h7k",
    "system": "zqcnry-system-9w2m",
    "output": "zqcnry-output-3p8x",
    "tool_args": "zqcnry-toolarg-6t1v",
    "tool_result": "zqcnry-toolres-2b5n",
    "exception": "zqcnry-exception-8d3q",
}
CANARY_PREFIX = "zqcnry"  # every canary starts with it: the scan looks for the prefix

# Usage the fake model reports on every answered call.
PROMPT_TOKENS = 31
COMPLETION_TOKENS = 7

SCRIPTS: dict[str, tuple[str, ...]] = {
    "clean": ("tool", "answer"),
    "retry": ("tool", "tool", "answer"),
    "rate_limited": ("tool", "rate_limit"),
    "tool_fails": ("tool", "answer"),
}
# How many model calls of each scenario are answered (and so carry token counts).
ANSWERED_CALLS = {"clean": 2, "retry": 3, "rate_limited": 1, "tool_fails": 2}

TOOL_NAME = "lookup_order"
TOOL_DESCRIPTION = "Look up the shipping state of an order."


class LookupOrder:
    """The tool's body for one scenario: fails on the calls the scenario says, else answers."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.calls = 0

    def __call__(self, order_id: str) -> str:
        self.calls += 1
        if self.scenario == "tool_fails" or (self.scenario == "retry" and self.calls == 1):
            raise ConnectionError(f"{CANARIES['exception']} order service refused {order_id}")
        return f"{CANARIES['tool_result']} order {order_id} shipped"


def prompt() -> str:
    return f"{CANARIES['prompt']} where is my order?"


def system_prompt() -> str:
    return f"{CANARIES['system']} you are a support agent; use the tools."
