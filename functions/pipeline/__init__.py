"""Lambda functions of the dog breed pipeline: handlers are thin, logic lives in the modules here."""
