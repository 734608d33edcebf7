// Package catalog tests the bridge, run as a process, against an event
// catalog kept in a directory and in a git repository (DESIGN.md §13).
package catalog
