"""``python -m agenttracer`` runs the command line."""

from agenttracer.cli import main

main()
