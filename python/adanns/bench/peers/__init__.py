"""Peers (optional extras): one module per system and index type; skipped with a message when missing."""
