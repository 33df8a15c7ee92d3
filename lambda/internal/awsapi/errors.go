package awsapi

import (
	"errors"

	"github.com/aws/smithy-go"
)

// Error classes the orchestrator branches on. Every API error code the
// Lambda cares about is listed here and nowhere else.
var (
	// throttleCodes: back off and retry (within the freeze deadline when
	// inside the window).
	throttleCodes = map[string]bool{
		"RequestLimitExceeded":                  true, // EC2 API request rate / CreateSnapshot bucket
		"Throttling":                            true,
		"ThrottlingException":                   true, // SSM
		"ThrottledException":                    true,
		"TooManyRequestsException":              true,
		"RequestThrottled":                      true,
		"RequestThrottledException":             true,
		"EC2ThrottledException":                 true,
		"SnapshotCreationPerVolumeRateExceeded": true, // 15 s between snapshots of one volume
		"ConcurrentSnapshotLimitExceeded":       true, // ≤5 pending per volume
	}
	// serverCodes are transient service-side failures (besides any HTTP 5xx).
	serverCodes = map[string]bool{
		"InternalError":       true,
		"InternalFailure":     true,
		"InternalServerError": true,
		"ServiceUnavailable":  true,
		"Unavailable":         true,
		"RequestTimeout":      true,
	}
	// multiVolumeUnusable: CreateSnapshots cannot be used for this request or
	// this caller; fall back to CreateSnapshot per volume.
	multiVolumeUnusable = map[string]bool{
		"UnsupportedOperation":        true,
		"InvalidParameterCombination": true,
		"InvalidParameterValue":       true,
		"InvalidParameter":            true,
		"UnauthorizedOperation":       true, // IAM allows CreateSnapshot but not CreateSnapshots
		"OperationNotPermitted":       true,
	}
)

// Code returns the API error code of err, or "".
func Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// IsThrottle reports a rate-limit error (including EC2's per-volume snapshot rules).
func IsThrottle(err error) bool { return err != nil && throttleCodes[Code(err)] }

// IsPerVolumeLimit reports SnapshotCreationPerVolumeRateExceeded or
// ConcurrentSnapshotLimitExceeded, which no amount of fleet pacing fixes
// quickly for that volume.
func IsPerVolumeLimit(err error) bool {
	c := Code(err)
	return c == "SnapshotCreationPerVolumeRateExceeded" || c == "ConcurrentSnapshotLimitExceeded"
}

// IsServerError reports a transient service-side failure (5xx or an internal error code).
func IsServerError(err error) bool {
	if err == nil {
		return false
	}
	if s := httpStatus(err); s >= 500 && s <= 599 && !IsThrottle(err) {
		return true
	}
	return serverCodes[Code(err)]
}

// IsRetryable: throttling or a transient server error.
func IsRetryable(err error) bool { return IsThrottle(err) || IsServerError(err) }

// IsInvocationDoesNotExist: GetCommandInvocation before SSM knows the
// invocation (normal right after SendCommand).
func IsInvocationDoesNotExist(err error) bool { return Code(err) == "InvocationDoesNotExist" }

// IsSnapshotInUse: DeleteSnapshot of a snapshot used by an AMI.
func IsSnapshotInUse(err error) bool { return Code(err) == "InvalidSnapshot.InUse" }

// IsSnapshotNotFound: the snapshot is already gone.
func IsSnapshotNotFound(err error) bool { return Code(err) == "InvalidSnapshot.NotFound" }

// IsMultiVolumeUnusable: CreateSnapshots refused the request in a way that
// CreateSnapshot per volume may not.
func IsMultiVolumeUnusable(err error) bool { return multiVolumeUnusable[Code(err)] }

// IsAmbiguous: the call may have taken effect although it returned an error
// (5xx, or the connection/context ended before a response).
func IsAmbiguous(err error) bool {
	if err == nil {
		return false
	}
	if IsServerError(err) {
		return true
	}
	return Code(err) == "" // transport error, timeout, cancellation
}

// IsVolumeNotFound: the volume is already gone.
func IsVolumeNotFound(err error) bool { return Code(err) == "InvalidVolume.NotFound" }

// IsIncorrectState: the resource is not in a state the call accepts (a
// volume still creating, already detaching, or not attached).
func IsIncorrectState(err error) bool { return Code(err) == "IncorrectState" }

// IsVolumeInUse: the volume is attached (DeleteVolume, AttachVolume).
func IsVolumeInUse(err error) bool { return Code(err) == "VolumeInUse" }

// IsDeviceInUse: AttachVolume at an attachment point the instance already
// uses (EC2 answers InvalidParameterValue).
func IsDeviceInUse(err error) bool { return Code(err) == "InvalidParameterValue" }
