package awsapi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/smithy-go"
)

func TestClassification(t *testing.T) {
	api := func(code string) error { return fmt.Errorf("op: %w", &smithy.GenericAPIError{Code: code}) }
	tests := []struct {
		err                                                   error
		throttle, server, retryable, perVolume, multiUnusable bool
	}{
		{api("RequestLimitExceeded"), true, false, true, false, false},
		{api("ThrottlingException"), true, false, true, false, false},
		{api("SnapshotCreationPerVolumeRateExceeded"), true, false, true, true, false},
		{api("ConcurrentSnapshotLimitExceeded"), true, false, true, true, false},
		{api("InternalError"), false, true, true, false, false},
		{api("UnsupportedOperation"), false, false, false, false, true},
		{api("InvalidSnapshot.InUse"), false, false, false, false, false},
		{context.DeadlineExceeded, false, false, false, false, false},
	}
	for _, tt := range tests {
		if IsThrottle(tt.err) != tt.throttle || IsServerError(tt.err) != tt.server || IsRetryable(tt.err) != tt.retryable ||
			IsPerVolumeLimit(tt.err) != tt.perVolume || IsMultiVolumeUnusable(tt.err) != tt.multiUnusable {
			t.Errorf("%v: throttle=%v server=%v retryable=%v perVolume=%v multi=%v", tt.err, IsThrottle(tt.err), IsServerError(tt.err), IsRetryable(tt.err), IsPerVolumeLimit(tt.err), IsMultiVolumeUnusable(tt.err))
		}
	}
	if !IsAmbiguous(context.DeadlineExceeded) || !IsAmbiguous(api("InternalError")) || IsAmbiguous(api("RequestLimitExceeded")) || IsAmbiguous(nil) {
		t.Error("ambiguity classification")
	}
	if !IsSnapshotInUse(api("InvalidSnapshot.InUse")) || !IsSnapshotNotFound(api("InvalidSnapshot.NotFound")) || !IsInvocationDoesNotExist(api("InvocationDoesNotExist")) {
		t.Error("specific codes")
	}
	if Code(errors.New("plain")) != "" {
		t.Error("Code of a plain error")
	}
}
