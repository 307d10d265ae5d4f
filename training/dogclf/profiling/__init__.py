"""Profiling of the profiled job: ``sampler`` records step timings, a torch.profiler window and system
metrics; ``report`` turns them into profiler-report.html, loss.png and the ProfilerReport verdict."""
