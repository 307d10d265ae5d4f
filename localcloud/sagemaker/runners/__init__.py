"""The emulator's runners: processes that do the work its APIs (one module per resource family) accept."""
