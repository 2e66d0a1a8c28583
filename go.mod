module github.com/raftlab/raftlab

go 1.26.8
