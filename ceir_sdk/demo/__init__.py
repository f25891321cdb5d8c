"""The main job: fit, cluster, explain, export, index and query, then report (``ceir demo``)."""
