"""The container-faithful Python environments the jobs and endpoints run in."""
