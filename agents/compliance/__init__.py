"""One compliance engine for every outbound contact: SMS, email and calls.

`consent` classifies inbound texts (STOP / START / HELP and reasonable-means
revocations); `engine` decides whether a contact may happen now and, if not, when;
`gate` is the async shell that gathers the facts from the store, decides and audits.
"""
