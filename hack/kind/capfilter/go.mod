module retrospective.local/capfilter

go 1.26
