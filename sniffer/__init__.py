"""osflow-sniff: rebuild the call flow of an OpenStack command from passive HTTP/1.1 captures."""

__version__ = "0.1.0"
