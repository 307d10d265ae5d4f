"""The Lambda runtime: warm workers with Lambda's invocation semantics, and the Invoke API over them."""
