"""Errors an entry raises to say that restarting the cluster cannot help."""


class JobError(ValueError):
    """A mistake in the job itself: its configuration, its columns, its model.

    A node whose entry raises it reports the error as final: dlflow ends the job with it at
    once instead of restarting the cluster from its checkpoints (which would meet the same
    mistake again). dlflow treats an entry file that cannot be imported, or that lacks the
    entry function, the same way. Any other exception is a node failure, which a restart may
    get past (a lost peer, a full disk, an out-of-memory kill)::

        from dlflow import JobError

        def train_entry(context):
            if "label" not in context.properties:
                raise JobError("the job needs the property 'label'")

    A subclass of ``ValueError``, so code that catches ``ValueError`` still does.
    """
