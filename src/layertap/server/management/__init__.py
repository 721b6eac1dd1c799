"""Model management: which versions serve (`lifecycle`, with its `loader`, `warmup` and poll
`problems`) and the one `registry` of AVAILABLE versions and labels that requests read."""
