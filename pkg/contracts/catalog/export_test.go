package catalog

// ParseValueForTest exposes parseValue to the external tests.
var ParseValueForTest = parseValue
