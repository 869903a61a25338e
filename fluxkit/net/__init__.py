"""The Trio layer: sockets, tasks and timers driving the sans-IO machines of fluxkit.protocols.

This is the only package that does network I/O.
"""
