"""What a user sees while work runs: progress on a terminal and off it."""
