"""The conformance-corpus recorder: runs real agent frameworks offline and keeps what they export.

``python -m tests.conformance.record [FRAMEWORK ...] [--scenario NAME ...]`` (see tests/conformance/
README.md). Needs the ``conformance`` extra; the replay tests need only the recordings it writes.
"""
