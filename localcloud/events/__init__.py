"""Event routing: S3 notifications, EventBridge patterns and Lambda destinations to the functions."""
