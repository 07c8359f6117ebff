module ferry.local/ferry-run

go 1.22
