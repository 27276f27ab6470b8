"""Scoring the champion: in-process scoring, batch scores, the prediction log, bento packaging."""
