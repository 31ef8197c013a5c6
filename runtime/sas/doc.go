// Package sas parses IoT Hub connection strings and creates, parses and
// verifies shared access signature (SAS) tokens: the MQTT CONNECT password of
// devices and modules, and the Authorization header of the service REST API.
//
// # Tokens
//
// A token is the literal "SharedAccessSignature", one space, then k=v pairs
// joined by '&' in any order:
//
//	SharedAccessSignature sr={URL-encoded resource URI}&sig={URL-encoded base64}&se={epoch seconds}[&skn={policy}]
//
// The signature is HMAC-SHA256, keyed with the base64-decoded symmetric key,
// over sr exactly as transmitted + "\n" + se. Clients disagree on how to encode
// sr (lowercase %2f, uppercase %2F, ids encoded twice by the C# SDK), so [Parse]
// keeps sr verbatim and [Token.VerifySignature] signs it verbatim; only
// [Token.Audience] decodes it, to find out whom the token is for.
//
// # Verification
//
// [Verify] applies edgeHub's rules for a device or module CONNECT: not expired
// (with [ClockSkew] of tolerance), issued for one of the accepted host names,
// issued for the connecting identity or for its device (a device token is
// valid for the device's modules), and signed by the primary or the secondary
// key. [VerifyPolicy] does the same for a shared access policy token on the
// service API.
//
// # Connection strings
//
// [ParseConnectionString] reads the ';'-separated Key=Value form that the
// Azure SDKs use, for devices, modules and service (policy) clients.
//
// Everything here is pure: the clock is passed in as now, and only [NewKey]
// reads randomness. Error messages never contain keys or signatures.
package sas
