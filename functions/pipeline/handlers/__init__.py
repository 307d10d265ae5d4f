"""One module per Lambda function: Powertools decorators plus one call into the logic."""
