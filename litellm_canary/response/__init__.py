"""What follows a rollback: the follow-up (drain and verification), incident records and the drill."""
