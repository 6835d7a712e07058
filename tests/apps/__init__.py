"""Applications the command-line tests load, as a user's would be (``module:attribute``)."""
