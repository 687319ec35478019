"""The ``schedulerx`` command line: thin; one module per subcommand."""
