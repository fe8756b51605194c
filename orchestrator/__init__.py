"""Build, serve and benchmark Step-3.5-Flash with llama.cpp on unified-memory workstations."""

__version__ = "0.1.0"
