"""replab: one DVC pipeline reproducing five works on learning controlled representations."""

__version__ = "0.1.0"
