//go:build race

package main

// raceEnabled: the tests run with -race, and so does the built command.
const raceEnabled = true
