"""Faults: their model, random expansion into schedules, and the engine that carries them out."""
