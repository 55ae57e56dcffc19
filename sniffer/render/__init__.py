"""Sinks: each output format is a small consumer of the flow model (FlowMessage and Call)."""
