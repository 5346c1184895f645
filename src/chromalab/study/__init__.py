"""Studies: several training recipes, each trained on the same data for the same budget,
scored on the same photos, in one table, one sample sheet and one FID-against-time plot.

``spec`` reads and checks a study file (pydantic); ``runner`` trains the entries (resuming,
skipping finished ones, going on past broken ones); ``callbacks`` time the training and stop
it at the budget; ``results`` scores the entries and writes the table; ``curve`` scores the
weight snapshots; ``record`` keeps track of what the study's folder holds; ``pipeline`` runs
it all (``chromalab study``). See docs/studies.md.
"""

from chromalab.study.pipeline import StudyOutcome, open_record, run_study
from chromalab.study.spec import Entry, Study, load_study

__all__ = ["Entry", "Study", "StudyOutcome", "load_study", "open_record", "run_study"]
