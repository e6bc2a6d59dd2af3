"""Retrieval, answering, citations and chat over a Chokepoint index."""
