"""Conventions shared by datamodules, models and the prediction writer.

A batch is a dict keyed by loader name. Datamodules may add
:data:`INDEX_KEY`: the positions (a LongTensor) of the batch's rows in the
split's manifest frame, so predictions can be joined back to the manifest's
identifying columns. Models ignore keys they do not use.
"""

INDEX_KEY = "_index"
