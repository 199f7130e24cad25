"""Call analysis: what a finished call came to, and the owner's new-lead notice."""
