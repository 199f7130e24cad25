"""Sales calls: the script (stages, objections, forbidden claims) as data, its rendering
into the realtime model's instructions, and the keyless brain's stage follower."""
