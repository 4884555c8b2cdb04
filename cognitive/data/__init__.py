"""Training data: the guide's record (schema), its response format (response), the generators and their
independent checkers (generators/, verify), the quality filters (filters), the build pipeline (build) and teacher
models (teacher)."""
