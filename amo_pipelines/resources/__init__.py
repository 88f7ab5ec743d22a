"""The API's resources: ``amo.pipelines`` and ``amo.statuses``, and the batch writer both use
(chunking, fan-out, reconciling creates whose outcome is unknown)."""
