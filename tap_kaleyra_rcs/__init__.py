"""Singer tap for the RCS testers registered under Kaleyra RCS agents."""
