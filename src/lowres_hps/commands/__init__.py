"""The handlers of the ``lowres-hps`` subcommands, one module per command (the table is in ``lowres_hps.cli``).

The top layer: a handler parses nothing (``cli`` does), takes the ``argparse.Namespace`` and returns an
exit code; it may use every package below it. Library code never imports from here.
"""
