module shoal.dev/guest/go/shoal

go 1.24
