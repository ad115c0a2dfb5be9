"""The one error the simulator raises for bad input; the CLI turns it into one line + exit 2."""


class SimInputError(ValueError):
    """Bad user input (file, row, value, flag). The message is complete and fits on one line."""
