"""The stack: AWS's SAM transform offline, the template read as AWS reads it, and its resources in moto."""
