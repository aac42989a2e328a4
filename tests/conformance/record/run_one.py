"""Records one framework in one scenario, in a process of its own (instrumentors and tracer providers
are process-global): ``python -m tests.conformance.record.run_one FRAMEWORK SCENARIO RECEIVER MODEL``.

The framework module's ``record(ctx)`` runs the agent; an exception it lets escape is the scenario's
expected ending (the rate-limited run) and is swallowed here after the exporters were flushed. A batch
the receiver did not take fails the process, whatever the scenario.
"""

from __future__ import annotations

import importlib
import os
import sys

from tests.conformance.record.context import VERSION_VARIABLE, Context


def main(argv: list[str]) -> int:
    framework, scenario, receiver_url, model_url = argv
    ctx = Context(scenario=scenario, receiver_url=receiver_url, model_url=model_url,
                  version=os.environ.get(VERSION_VARIABLE, "1.0.0"))
    os.environ.update(ctx.openai_env())
    module = importlib.import_module(f"tests.conformance.record.frameworks.{framework.replace('-', '_')}")
    ended: Exception | None = None
    try:
        module.record(ctx)
    except Exception as exc:  # the rate-limited scenario ends with the framework's exception
        ended = exc
        print(f"{framework}/{scenario}: the run ended with {type(exc).__module__}.{type(exc).__qualname__}",
              file=sys.stderr)
    finally:
        ctx.close()  # raises if the receiver did not take every span, in every scenario
    if ended is not None and scenario != "rate_limited":
        raise ended
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
