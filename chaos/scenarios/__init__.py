"""The chaos scenarios, one module each; every one returns a :class:`chaos.report.Report`."""
