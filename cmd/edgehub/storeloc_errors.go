package main

import "errors"

// Why a store folder named by the $edgeHub twin (storeloc.go) is refused. The hub reports
// the wrapped text in lastDesiredStatus.description; tests match with errors.Is.
var (
	// errFolderNotAbsolute: the folder is a relative path; relative to what would depend
	// on the working directory of whatever started the hub.
	errFolderNotAbsolute = errors.New("not an absolute path")
	// errFolderForbidden: the folder is, or is inside, a system directory or the
	// certificates directory.
	errFolderForbidden = errors.New("a forbidden place for the message store")
	// errFolderHoldsStore: the folder already holds a store file, which the move would
	// overwrite (the messages of another hub, or of an earlier run).
	errFolderHoldsStore = errors.New("already holds a " + storeFile)
	// errFolderNotWritable: the folder cannot be created, or a file in it cannot be
	// written and synced.
	errFolderNotWritable = errors.New("not writable")
	// errFolderNoSpace: the folder is on another file system without room for the store.
	errFolderNoSpace = errors.New("not enough free space for the store")
	// errMoveFailed: an earlier attempt to move the store there, for the same desired
	// version, failed; it is not tried again until the version changes or the hub restarts.
	errMoveFailed = errors.New("moving the store there failed")
)
