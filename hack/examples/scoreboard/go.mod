module shoal.dev/examples/scoreboard

go 1.24

require shoal.dev/guest/go/shoal v0.0.0

replace shoal.dev/guest/go/shoal => ../../../guest/go/shoal
