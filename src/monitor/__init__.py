"""monitor: watches Central Asian news outlets and keeps one searchable copy of each story."""

__version__ = "0.1.0"
