"""huntflow: closed-loop parameter hunts."""
__version__ = "0.1.0"
